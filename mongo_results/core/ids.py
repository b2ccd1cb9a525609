"""Result ids: canonical form and validation (the README's "Result ids").

An id is a string ``"a/b/c"`` or a sequence of parts; every part is split on
``/`` and empty segments are dropped, so ``"a//b/"``, ``["a", "b"]`` and
``["a/b"]`` are the same id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import InvalidArgumentError, InvalidIdError

__all__ = [
    "MAX_ID_BYTES",
    "MAX_SEGMENT_BYTES",
    "ResultId",
    "canonical_id",
    "canonical_ids",
    "canonical_prefix",
    "segments",
]

ResultId = str | Sequence[str]

MAX_SEGMENT_BYTES = 255
MAX_ID_BYTES = 1024


def _split(result_id: object, what: str) -> tuple[str, ...]:
    if isinstance(result_id, str):
        parts: Sequence[object] = [result_id]
    elif isinstance(result_id, Sequence) and not isinstance(result_id, (bytes, bytearray)):
        parts = result_id
    else:
        raise InvalidIdError(f"{what} must be a string or a sequence of strings, got {type(result_id).__name__}")
    out: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise InvalidIdError(f"{what} segment {part!r} is a {type(part).__name__}, not a string")
        out.extend(seg for seg in part.split("/") if seg)
    return tuple(out)


def _check(segs: tuple[str, ...], what: str, shown: object) -> None:
    for seg in segs:
        if seg in (".", ".."):
            raise InvalidIdError(f"{what} {shown!r} has a {seg!r} segment")
        if "\x00" in seg:
            raise InvalidIdError(f"{what} {shown!r} contains a NUL character")
        try:
            size = len(seg.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidIdError(f"{what} {shown!r} is not valid Unicode (a lone surrogate)") from None
        if size > MAX_SEGMENT_BYTES:
            raise InvalidIdError(f"{what} {shown!r} has a segment over {MAX_SEGMENT_BYTES} UTF-8 bytes")
    total = len("/".join(segs).encode("utf-8"))
    if total > MAX_ID_BYTES:
        raise InvalidIdError(f"{what} is {total} UTF-8 bytes, over the {MAX_ID_BYTES}-byte limit")


def _plain(result_id: str) -> tuple[str, ...] | None:
    """The segments of a short ASCII id that needs no per-segment check (the usual case), else None."""
    if len(result_id) > MAX_SEGMENT_BYTES or not result_id.isascii() or "\x00" in result_id or "//" in result_id:
        return None
    segs = tuple(result_id.strip("/").split("/"))
    return None if "." in segs or ".." in segs or segs == ("",) else segs


def segments(result_id: ResultId) -> tuple[str, ...]:
    """Return the validated segments of an id; raise InvalidIdError when it is invalid."""
    if type(result_id) is str:
        plain = _plain(result_id)
        if plain is not None:
            return plain
    segs = _split(result_id, "Result id")
    if not segs:
        raise InvalidIdError(f"Invalid result ID {result_id!r}: empty ID")
    _check(segs, "Result id", result_id)
    return segs


def canonical_id(result_id: ResultId) -> str:
    """Return the canonical ``a/b/c`` form of an id, the form ids are stored and listed in.

    Every part is split on ``/`` and empty segments are dropped, so ``"a//b/"``,
    ``["a", "b"]`` and ``["a/b"]`` are the same id ``"a/b"``.

    Args:
        result_id: A string ``"a/b/c"`` or a sequence of string parts.

    Returns:
        The segments joined by ``/``.

    Raises:
        InvalidIdError: The id is empty, not a string or sequence of strings, has a ``.`` or
            ``..`` segment or a NUL character, a segment over 255 UTF-8 bytes, or is over
            1024 bytes in all (a ``ValueError``).
    """
    return "/".join(segments(result_id))


def canonical_prefix(prefix: ResultId | None) -> str:
    """Return the canonical form of a listing prefix; ``""`` means everything."""
    if prefix is None:
        return ""
    segs = _split(prefix, "Prefix")
    _check(segs, "Prefix", prefix)
    return "/".join(segs)


def canonical_ids(result_ids: Iterable[ResultId], call: str) -> list[str]:
    """The canonical ids of a call that takes many; one string is refused, not read as its letters."""
    if isinstance(result_ids, (str, bytes)):
        raise InvalidArgumentError(
            f"{call} takes several ids (a list), not the string {result_ids!r}: pass [{result_ids!r}] for one"
        )
    return [canonical_id(r) for r in result_ids]
