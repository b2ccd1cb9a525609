"""Set behaviours and the one table that decides every ``set`` (the README's "Set behaviours")."""

from __future__ import annotations

from enum import Enum

from ..errors import ResultExistsError

__all__ = ["SetBehavior", "Stored", "outcome", "writes"]


class SetBehavior(str, Enum):
    """What ``set`` (and ``set_many``, ``store``) does when a result already exists under the id.

    A ``str`` enum: ``SetBehavior("overwrite")`` and the member are interchangeable. Each
    decision is atomic on every store, so concurrent writers of one id cannot both win.
    """

    RAISE_IF_EXISTS = "raise_if_exists"
    """Write only into an empty id; raise ``ResultExistsError`` if anything is stored (the default)."""
    RAISE_IF_DIFFERENT = "raise_if_different"
    """Write into an empty id; return True if the same content is stored; raise ``ResultExistsError`` if other."""
    OVERWRITE = "overwrite"
    """Always write, replacing whatever is stored; return True."""
    SKIP_IF_EXISTS = "skip_if_exists"
    """Return False without writing if the same content is stored; otherwise write (replacing) and return True."""
    KEEP_EXISTING = "keep_existing"
    """Write only into an empty id and return True; whatever is stored stays, and the call returns False."""


class Stored(Enum):
    """What the store held under the id when the write was decided."""

    NOTHING = "nothing"
    SAME = "same"
    DIFFERENT = "different"
    EXISTING = "existing"  # something, content unknown (only RAISE_IF_EXISTS needs no more)


_RAISE = None
_Cell = tuple[bool, "bool | None"]  # (writes?, the value returned, or _RAISE: ResultExistsError)
_COLUMNS = (Stored.NOTHING, Stored.SAME, Stored.DIFFERENT, Stored.EXISTING)
# A behaviour that needs the stored content to decide never meets EXISTING: its cell is None.
# fmt: off
_GRID: dict[SetBehavior, tuple[_Cell | None, ...]] = {
    #                               NOTHING        SAME             DIFFERENT        EXISTING
    SetBehavior.RAISE_IF_EXISTS:    ((True, True), (False, _RAISE), (False, _RAISE), (False, _RAISE)),
    SetBehavior.RAISE_IF_DIFFERENT: ((True, True), (False, True),   (False, _RAISE), None),
    SetBehavior.SKIP_IF_EXISTS:     ((True, True), (False, False),  (True, True),    None),
    SetBehavior.KEEP_EXISTING:      ((True, True), (False, False),  (False, False),  (False, False)),
    SetBehavior.OVERWRITE:          ((True, True), (True, True),    (True, True),    None),
}
# fmt: on
_TABLE = {b: {s: cell for s, cell in zip(_COLUMNS, row, strict=True) if cell is not None} for b, row in _GRID.items()}


def writes(behavior: SetBehavior, stored: Stored) -> bool:
    """Whether ``set`` writes, given what is stored."""
    return _TABLE[SetBehavior(behavior)][stored][0]


def outcome(behavior: SetBehavior, stored: Stored, result_id: str, namespace: str) -> bool:
    """The value ``set`` returns, given what was stored; raises ResultExistsError where the table says so."""
    result = _TABLE[behavior if type(behavior) is SetBehavior else SetBehavior(behavior)][stored][1]
    if result is _RAISE:
        different = {Stored.SAME: False, Stored.DIFFERENT: True}.get(stored)
        raise ResultExistsError(result_id, namespace, different=different)
    return result
