"""FileBackend: the ``results_manager`` on-disk layout, safe for many processes.

``base_dir/<segments>.json`` holds ``{"model_type", "namespace", "data"}``, so
trees written by ``results_manager`` are read as they are. Files written here
add ``"format"`` and store data in MongoDB Extended JSON (relaxed), which keeps
bytes, UUIDs, decimals and non-finite floats exact. Writers take one
``fcntl`` lock per store and replace files atomically; readers never block.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bson import json_util
from pydantic import BaseModel

from .._core import SetPlan, load_model, not_found, optional_namespace, plan_encoded, plan_set
from ..behaviors import SetBehavior, Stored, outcome, writes
from ..encoding import JSON_OPTIONS, content_digest, encode_stored, escape_key, map_keys
from ..errors import InvalidIdError, MongoResultsError, ResultNotFoundError, StoreNotFoundError
from ..ids import ResultId, canonical_id, canonical_prefix, segments
from ..registry import DEFAULT_NAMESPACE

__all__ = ["FORMAT", "FileBackend"]

FORMAT = "mongo_results/1"
_LOCK_NAME = ".mongo_results.lock"
_SUFFIX = ".json"
_TMP = ".tmp"  # a file being written: ".<16 hex digits>.tmp" beside its final name


class FileBackend:
    """Results as JSON files under ``base_dir``."""

    def __init__(
        self, base_dir: str | os.PathLike[str], create_if_missing: bool = True, *, store_secrets: bool = False
    ) -> None:
        self.base_dir = Path(base_dir)
        self.store_secrets = store_secrets
        if not self.base_dir.exists():
            if not create_if_missing:
                raise StoreNotFoundError(f"Base directory {self.base_dir} does not exist")
            self.base_dir.mkdir(parents=True, exist_ok=True)
        elif not self.base_dir.is_dir():
            raise NotADirectoryError(f"{self.base_dir} is not a directory")
        self._root = self.base_dir.resolve()

    # -- paths, locks and files ---------------------------------------------------------

    def _path(self, segs: tuple[str, ...]) -> Path:
        name = segs[-1] + _SUFFIX
        if len(name.encode("utf-8")) > 255:
            raise InvalidIdError(
                f"Result id segment {segs[-1]!r} is too long for a file name (250 UTF-8 bytes at most)"
            )
        path = self._root.joinpath(*segs[:-1], name)
        # A symbolic link inside the store (to a directory or to a file) must not lead outside it.
        if not self._inside(path):
            raise InvalidIdError(f"Result id {'/'.join(segs)!r} leads outside {self._root}")
        return path

    def _inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self._root)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._root / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        raw = json.loads(text)
        if isinstance(raw, dict) and raw.get("format") == FORMAT:
            envelope: dict[str, Any] = json_util.loads(text, json_options=JSON_OPTIONS)
            return envelope
        if isinstance(raw, dict) and isinstance(raw.get("data"), dict):
            raw["data"] = map_keys(raw["data"], escape_key)  # seed files hold raw keys
        return raw if isinstance(raw, dict) else {}

    def _write(self, path: Path, envelope: dict[str, Any]) -> None:
        text = json_util.dumps(envelope, json_options=JSON_OPTIONS, indent=2)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise InvalidIdError(f"{path.relative_to(self._root)} clashes with an existing result file") from exc
        tmp = path.with_name(f".{secrets.token_hex(8)}{_TMP}")  # short: the final name may be 255 bytes
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except IsADirectoryError as exc:
            raise InvalidIdError(f"{path.relative_to(self._root)} clashes with a directory of other results") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _prune(self, directory: Path) -> None:
        while directory != self._root and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            directory = directory.parent

    def _files(self, top: Path) -> Iterator[os.DirEntry[str]]:
        """Every file under ``top``, never through a symbolic link (listing keeps to the store as ``get`` does)."""
        try:
            entries = list(os.scandir(top))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from self._files(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                yield entry

    def _result_files(self, prefix: str) -> Iterator[tuple[str, Path]]:
        top = self._root.joinpath(*prefix.split("/")) if prefix else self._root
        if prefix:
            if not self._inside(top.parent):
                return
            single = top.with_name(top.name + _SUFFIX)
            if single.is_file() and not single.is_symlink():
                yield prefix, single
            if top.is_symlink():
                return
        for entry in self._files(top):
            if entry.name.endswith(_SUFFIX):
                path = Path(entry.path)
                yield path.relative_to(self._root).as_posix()[: -len(_SUFFIX)], path

    def leftovers(self) -> list[Path]:
        """Temporary files of writers that were killed mid-write (never a visible result)."""
        return [Path(e.path) for e in self._files(self._root) if e.name.startswith(".") and e.name.endswith(_TMP)]

    def remove_leftovers(self) -> int:
        """Remove the temporary files of killed writers; under the store's lock, so none is in use."""
        with self._locked():
            found = self.leftovers()
            for path in found:
                path.unlink(missing_ok=True)
        return len(found)

    # -- operations -------------------------------------------------------------------

    def _apply(self, plan: SetPlan) -> bool:
        doc = plan.document
        path = self._path(tuple(doc["path"]))
        with self._locked():
            existing = self._read(path)
            if existing is None:
                stored = Stored.NOTHING
            elif plan.behavior is SetBehavior.RAISE_IF_EXISTS:
                stored = Stored.EXISTING
            else:
                same = (
                    existing.get("namespace") == plan.namespace
                    and content_digest(str(existing.get("model_type")), existing.get("data") or {}) == doc["digest"]
                )
                stored = Stored.SAME if same else Stored.DIFFERENT
            result = outcome(plan.behavior, stored, plan.result_id, plan.namespace)
            if writes(plan.behavior, stored):
                envelope = {k: doc[k] for k in ("model_type", "namespace", "data")}
                self._write(path, {**envelope, "format": FORMAT})
            return result

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        """Store ``data`` under ``result_id``, deciding under the store's lock (SPEC §2.2)."""
        return self._apply(
            plan_set(result_id, data, behavior, namespace, strict_namespace, store_secrets=self.store_secrets)
        )

    def store(
        self,
        result_id: ResultId,
        model_type: str,
        data: Mapping[str, Any],
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> bool:
        """Store data already in stored form (an export or a file tree) with ``set``'s semantics."""
        return self._apply(plan_encoded(result_id, encode_stored(model_type, data), behavior, namespace))

    def documents(
        self, prefix: ResultId | None = None, namespace: str | None = None, *, with_data: bool = True
    ) -> list[dict[str, Any]]:
        """The stored results under a prefix as documents shaped like MongoDB's, sorted by id."""
        namespace = optional_namespace(namespace)
        found = []
        for rid, path in sorted(self._result_files(canonical_prefix(prefix))):
            envelope = self._read(path)
            if envelope is None or (namespace is not None and envelope.get("namespace") != namespace):
                continue
            changed = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).replace(tzinfo=None)
            doc = {
                "_id": rid,
                "path": rid.split("/"),
                "model_type": envelope.get("model_type"),
                "namespace": envelope.get("namespace", DEFAULT_NAMESPACE),
                "created_at": changed,  # a file keeps only its modification time
                "updated_at": changed,
            }
            if with_data:
                doc["data"] = envelope.get("data")
            found.append(doc)
        return found

    def set_many(
        self,
        items: Mapping[str, BaseModel] | Iterable[tuple[ResultId, BaseModel]],
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
    ) -> list[bool | BaseException]:
        """``set`` for many results; per item its return value or its exception."""
        outcomes: list[bool | BaseException] = []
        for rid, model in items.items() if isinstance(items, Mapping) else items:
            try:
                outcomes.append(self.set(rid, model, behavior, namespace))
            except (MongoResultsError, ValueError, TypeError, FileExistsError) as exc:
                outcomes.append(exc)
        return outcomes

    def get_many(
        self, result_ids: Sequence[ResultId], model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> list[BaseModel]:
        """``get`` for many ids, in their order."""
        namespace = optional_namespace(namespace)
        missing = [canonical_id(r) for r in result_ids if not self.exists(r)]
        if missing:
            raise not_found(missing)
        return [self.get(r, model_class, namespace) for r in result_ids]

    def iter_results(
        self,
        prefix: ResultId | None = None,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
        batch_size: int = 500,
    ) -> Iterator[tuple[str, BaseModel]]:
        """``(id, model)`` under a prefix, one file at a time (``batch_size`` is for the API's sake)."""
        namespace = optional_namespace(namespace)
        for rid, path in sorted(self._result_files(canonical_prefix(prefix))):
            envelope = self._read(path)
            if envelope is not None and (namespace is None or envelope.get("namespace") == namespace):
                yield rid, load_model(envelope, rid, model_class, namespace)

    def get(
        self,
        result_id: ResultId,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
    ) -> BaseModel:
        """The stored result; ``namespace`` overrides where its model type is looked up."""
        namespace = optional_namespace(namespace)
        segs = segments(result_id)
        rid = "/".join(segs)
        envelope = self._read(self._path(segs))
        if envelope is None:
            raise ResultNotFoundError(rid)
        return load_model(envelope, rid, model_class, namespace)

    def _namespace_of(self, path: Path) -> str | None:
        envelope = self._read(path)
        return None if envelope is None else envelope.get("namespace")

    def exists(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Whether a result file exists (in ``namespace``, when given)."""
        namespace = optional_namespace(namespace)
        path = self._path(segments(result_id))
        if namespace is None:
            return path.is_file()
        return self._namespace_of(path) == namespace

    def list_ids(self, prefix: ResultId | None = None, namespace: str | None = None) -> list[str]:
        """Sorted ids under ``prefix``, matched by whole segments."""
        namespace = optional_namespace(namespace)
        found = {
            rid
            for rid, path in self._result_files(canonical_prefix(prefix))
            if namespace is None or self._namespace_of(path) == namespace
        }
        return sorted(found)

    def delete(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Delete the result file; whether there was one."""
        namespace = optional_namespace(namespace)
        path = self._path(segments(result_id))
        with self._locked():
            if namespace is not None and self._namespace_of(path) != namespace:
                return False
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            self._prune(path.parent)
            return True

    def clear(self) -> None:
        """Delete every result file, and killed writers' temporary files (other files are left alone)."""
        with self._locked():
            for _, path in list(self._result_files("")):
                path.unlink(missing_ok=True)
            for path in self.leftovers():
                path.unlink(missing_ok=True)
            for dirpath, _, _ in sorted(os.walk(self._root), key=lambda w: -len(w[0])):
                self._prune(Path(dirpath))

    def __repr__(self) -> str:
        return f"FileBackend({str(self.base_dir)!r})"
