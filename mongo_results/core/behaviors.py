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
# behaviour -> stored -> (write?, return value or _RAISE)
_TABLE: dict[SetBehavior, dict[Stored, tuple[bool, bool | None]]] = {
    SetBehavior.RAISE_IF_EXISTS: {
        Stored.NOTHING: (True, True),
        Stored.SAME: (False, _RAISE),
        Stored.DIFFERENT: (False, _RAISE),
        Stored.EXISTING: (False, _RAISE),
    },
    SetBehavior.RAISE_IF_DIFFERENT: {
        Stored.NOTHING: (True, True),
        Stored.SAME: (False, True),
        Stored.DIFFERENT: (False, _RAISE),
    },
    SetBehavior.SKIP_IF_EXISTS: {
        Stored.NOTHING: (True, True),
        Stored.SAME: (False, False),
        Stored.DIFFERENT: (True, True),
    },
    SetBehavior.KEEP_EXISTING: {
        Stored.NOTHING: (True, True),
        Stored.SAME: (False, False),
        Stored.DIFFERENT: (False, False),
        Stored.EXISTING: (False, False),
    },
    SetBehavior.OVERWRITE: {
        Stored.NOTHING: (True, True),
        Stored.SAME: (True, True),
        Stored.DIFFERENT: (True, True),
    },
}


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
